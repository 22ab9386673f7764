//! The three built-in responsibility systems of DESIGN.md ("Built-in templates"), with the
//! rule codes, titles, clauses, cadences and minimum counts of `seed/DIGEST.md`.

use super::period::Cadence;

/// Who a rule binds: the organisation itself, or each leadership member there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binds {
    Organisation,
    EachMember,
}

impl Binds {
    pub fn as_str(self) -> &'static str {
        match self {
            Binds::Organisation => "organisation",
            Binds::EachMember => "each_member",
        }
    }
}

/// One rule of a template.
#[derive(Debug, Clone, Copy)]
pub struct RuleSpec {
    pub code: &'static str,
    pub title: &'static str,
    pub clause: &'static str,
    pub kinds: &'static [&'static str],
    pub cadence: Cadence,
    pub min_count: u32,
    pub needs_review: bool,
    pub binds: Binds,
    pub record_kind: &'static str,
    pub responsible_role: &'static str,
}

/// A built-in responsibility system.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub code: &'static str,
    pub title: &'static str,
    pub title_en: &'static str,
    pub rules: &'static [RuleSpec],
}

const COMMITTEE: &[&str] = &["committee"];
const BRANCH: &[&str] = &["branch"];
const BOTH: &[&str] = &["committee", "branch"];
const SCHOOL: &[&str] = &["school_branch"];

const fn rule(
    code: &'static str,
    title: &'static str,
    clause: &'static str,
    kinds: &'static [&'static str],
    cadence: Cadence,
    min_count: u32,
    record_kind: &'static str,
) -> RuleSpec {
    RuleSpec {
        code,
        title,
        clause,
        kinds,
        cadence,
        min_count,
        needs_review: false,
        binds: Binds::Organisation,
        record_kind,
        responsible_role: "secretary",
    }
}

/// A report to the superior: the superior reviews it.
const fn reviewed(r: RuleSpec) -> RuleSpec {
    RuleSpec { needs_review: true, ..r }
}

/// A rule binding each leadership member (一岗双责): one duty per holder of `member`.
const fn per_member(r: RuleSpec) -> RuleSpec {
    RuleSpec { binds: Binds::EachMember, responsible_role: "member", ..r }
}

use Cadence::{Half, Quarter, Year};

pub const IDEOLOGY_COMPANY: Template = Template {
    code: "ideology-company",
    title: "意识形态工作责任制（公司党委及所属党支部）",
    title_en: "Ideology work responsibility system (company committee and branches)",
    rules: &[
        rule("A1", "专题研究意识形态工作", "第八条(三)", COMMITTEE, Year, 2, "meeting"),
        reviewed(rule("A2", "向集团党委专题汇报意识形态工作", "第八条(三)", COMMITTEE, Half, 1, "report")),
        rule(
            "A3",
            "召开党建工作考核交流会，听取各单位意识形态工作汇报",
            "第八条(三)",
            COMMITTEE,
            Quarter,
            1,
            "meeting",
        ),
        rule("A4", "在公司党委、各党支部范围内通报意识形态领域情况", "第八条(三)", COMMITTEE, Year, 1, "briefing"),
        rule("A5", "召开意识形态工作联席会议", "第八条(三)", COMMITTEE, Year, 1, "meeting"),
        rule("A6", "专题研究意识形态工作", "第八条(三)", BRANCH, Year, 2, "meeting"),
        rule("A7", "召开意识形态分析研判会", "第八条(三)", BRANCH, Quarter, 1, "meeting"),
        reviewed(rule("A8", "向公司党委汇报意识形态工作", "第八条(三)", BRANCH, Quarter, 1, "report")),
        rule("A9", "在支部范围内通报意识形态领域情况", "第八条(三)", BRANCH, Year, 1, "briefing"),
        rule("A10", "对本单位意识形态工作进行专题督查，结果报政工部", "第十二条", BRANCH, Year, 1, "inspection"),
        rule("A11", "对改革涉及的重点人群进行回访，倾听诉求", "第十一条", BRANCH, Quarter, 1, "visit"),
        rule("A12", "把意识形态工作列入年度工作计划和工作总结", "第十条", BOTH, Year, 1, "plan"),
        per_member(rule("A13", "把意识形态工作作为民主生活会和述职报告的重要内容", "第十条", BOTH, Year, 1, "report")),
        rule("A14", "对各党支部意识形态工作进行检查考核", "第九条", COMMITTEE, Year, 1, "assessment"),
    ],
};

pub const IDEOLOGY_BRANCH_COMPANY: Template = Template {
    code: "ideology-branch-company",
    title: "意识形态工作责任制检查考核制度（分公司）",
    title_en: "Ideology work inspection and assessment system (branch company)",
    rules: &[
        reviewed(rule("B1", "定期向上级党组织专题汇报意识形态工作", "第1项", BRANCH, Half, 1, "report")),
        rule("B2", "把意识形态工作作为向党员大会报告工作的重要内容", "第2项", BRANCH, Year, 1, "report"),
        rule(
            "B3",
            "意识形态工作作为民主生活会、述职报告和书记党建责任制的重要内容",
            "第3项",
            BRANCH,
            Year,
            1,
            "meeting",
        ),
        rule("B4", "意识形态工作纳入目标管理和年度考核", "第4项", BRANCH, Year, 1, "assessment"),
    ],
};

pub const IDEOLOGY_SCHOOL: Template = Template {
    code: "ideology-school",
    title: "网络意识形态工作责任制（学校党支部）",
    title_en: "Network ideology work responsibility system (school branch)",
    rules: &[
        rule("C1", "专题研究意识形态重点内容和责任制", "第二条", SCHOOL, Year, 2, "meeting"),
        rule("C2", "理论学习中心组学习意识形态工作", "第三条", SCHOOL, Year, 2, "meeting"),
        reviewed(rule("C3", "向上级党委专题报告意识形态工作", "第四条", SCHOOL, Half, 1, "report")),
        rule("C4", "形成分析研判报告并提交学校党支部会研究", "第六条", SCHOOL, Year, 1, "report"),
        rule("C5", "对意识形态工作进行全面督查", "第七条", SCHOOL, Year, 1, "inspection"),
        rule("C6", "意识形态工作检查考核，纳入年度目标综合考评", "第八条", SCHOOL, Year, 1, "assessment"),
        rule("C7", "听取所属部门、子学校网络意识形态工作汇报", "第九条", SCHOOL, Year, 1, "meeting"),
        rule("C8", "班子成员意识形态工作纳入民主生活会对照检查和年终述职", "第十条", SCHOOL, Year, 1, "report"),
    ],
};

pub const ALL: [Template; 3] = [IDEOLOGY_COMPANY, IDEOLOGY_BRANCH_COMPANY, IDEOLOGY_SCHOOL];

pub fn find(code: &str) -> Option<&'static Template> {
    ALL.iter().find(|t| t.code == code)
}

/// The record kinds a rule may be fulfilled by.
pub const RECORD_KINDS: [&str; 7] = ["meeting", "report", "briefing", "inspection", "assessment", "visit", "plan"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_to_a_superior_and_only_they_need_review() {
        let reviewed: Vec<&str> = ALL.iter().flat_map(|t| t.rules).filter(|r| r.needs_review).map(|r| r.code).collect();
        assert_eq!(reviewed, ["A2", "A8", "B1", "C3"]);
    }

    #[test]
    fn only_a13_binds_each_leadership_member() {
        let per_member: Vec<&str> =
            ALL.iter().flat_map(|t| t.rules).filter(|r| r.binds == Binds::EachMember).map(|r| r.code).collect();
        assert_eq!(per_member, ["A13"]);
    }

    #[test]
    fn company_template_kinds_match_the_design() {
        let kinds = |code: &str| IDEOLOGY_COMPANY.rules.iter().find(|r| r.code == code).unwrap().kinds;
        for c in ["A1", "A2", "A3", "A4", "A5", "A14"] {
            assert_eq!(kinds(c), COMMITTEE, "{c}");
        }
        for c in ["A6", "A7", "A8", "A9", "A10", "A11"] {
            assert_eq!(kinds(c), BRANCH, "{c}");
        }
        assert_eq!(kinds("A12"), BOTH);
        assert_eq!(kinds("A13"), BOTH);
    }

    #[test]
    fn codes_are_unique_across_templates_and_counts_match_the_digest() {
        let mut codes: Vec<&str> = ALL.iter().flat_map(|t| t.rules).map(|r| r.code).collect();
        let n = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), n);
        let twice: Vec<&str> = ALL.iter().flat_map(|t| t.rules).filter(|r| r.min_count == 2).map(|r| r.code).collect();
        assert_eq!(twice, ["A1", "A6", "C1", "C2"]);
        let a5 = IDEOLOGY_COMPANY.rules.iter().find(|r| r.code == "A5").unwrap();
        assert_eq!((a5.cadence, a5.min_count), (Cadence::Year, 1));
        for r in ALL.iter().flat_map(|t| t.rules) {
            assert!(RECORD_KINDS.contains(&r.record_kind), "{}", r.code);
        }
    }
}
